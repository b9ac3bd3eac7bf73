//! Calibration of predicted probabilities: expected calibration error (ECE) with its reliability
//! table, and temperature scaling.
//!
//! Both follow Guo, Pleiss, Sun and Weinberger, "On Calibration of Modern Neural Networks"
//! (ICML 2017):
//!
//! - **ECE**: predictions are grouped by confidence (the top probability) into `M` equal-width
//!   bins over `[0, 1]` (`M` = [`ECE_BINS`] = 15 as in the paper); bin `m` holds the confidences
//!   in `((m-1)/M, m/M]`. `ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|`, the weighted gap
//!   between accuracy and mean confidence.
//! - **Temperature scaling**: one scalar `T > 0` divides the logits before the softmax,
//!   `q = softmax(z / T)`, fitted by minimizing the negative log-likelihood on validation data.
//!   Arg-max predictions (and so accuracy) do not change. taxon models return probabilities, so
//!   the logits are their logarithms: `log p = z - logsumexp(z)` differs from `z` by a
//!   per-example constant, which the softmax cancels, so this is exact for softmax models.
//!
//! The NLL is convex in `beta = 1/T` (a log-sum-exp of functions linear in `beta`, minus a
//! linear term), hence unimodal in `log T`; the fit is a golden-section search on `log T`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Number of equal-width confidence bins of the ECE (Guo et al. 2017 use 15).
pub const ECE_BINS: usize = 15;

/// File name of a fitted temperature in a model folder.
pub const TEMPERATURE_JSON: &str = "temperature.json";

/// Smallest probability used when taking logarithms, so that a zero probability gives a large
/// but finite negative logit.
const MIN_PROB: f64 = 1e-30;

/// Search range of the temperature fit.
pub const MIN_TEMPERATURE: f64 = 0.01;
pub const MAX_TEMPERATURE: f64 = 100.0;

/// Errors of calibration computations.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("calibration needs at least one example with a label the model knows, got none")]
    NoExamples,
    #[error("calibration input: example {index}: {message}")]
    BadExample { index: usize, message: String },
    #[error("ECE bins: {bins} is not a valid count (use 1 to 1000)")]
    BadBins { bins: usize },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One confidence bin of a reliability table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge (exclusive, except for the first bin which also holds confidence 0).
    pub lower: f64,
    /// Upper edge (inclusive).
    pub upper: f64,
    /// Mean confidence of the predictions in the bin (0 when empty).
    pub confidence: f64,
    /// Share of correct predictions in the bin (0 when empty).
    pub accuracy: f64,
    /// Predictions in the bin.
    pub count: u64,
}

/// Expected calibration error and the reliability table it was computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub ece: f64,
    /// Largest gap between accuracy and confidence over non-empty bins (MCE in Guo et al.).
    pub mce: f64,
    pub bins: Vec<ReliabilityBin>,
}

/// ECE and reliability table of predictions with `confidences` (top probability, in [0, 1])
/// and whether each was `correct`, over `n_bins` equal-width bins.
pub fn reliability(
    confidences: &[f64],
    correct: &[bool],
    n_bins: usize,
) -> Result<Calibration, CalibrationError> {
    if n_bins == 0 || n_bins > 1000 {
        return Err(CalibrationError::BadBins { bins: n_bins });
    }
    if confidences.len() != correct.len() {
        return Err(CalibrationError::BadExample {
            index: confidences.len().min(correct.len()),
            message: format!(
                "{} confidences but {} correctness flags",
                confidences.len(),
                correct.len()
            ),
        });
    }
    let mut sum_conf = vec![0.0f64; n_bins];
    let mut hits = vec![0u64; n_bins];
    let mut counts = vec![0u64; n_bins];
    for (index, (&c, &ok)) in confidences.iter().zip(correct).enumerate() {
        if !(0.0..=1.0 + 1e-6).contains(&c) {
            return Err(CalibrationError::BadExample {
                index,
                message: format!("confidence {c} is outside [0, 1]"),
            });
        }
        let b = bin_of(c, n_bins);
        sum_conf[b] += c.min(1.0);
        hits[b] += u64::from(ok);
        counts[b] += 1;
    }
    let n: u64 = counts.iter().sum();
    let mut ece = 0.0;
    let mut mce = 0.0f64;
    let bins = (0..n_bins)
        .map(|b| {
            let count = counts[b];
            let (confidence, accuracy) = if count == 0 {
                (0.0, 0.0)
            } else {
                (sum_conf[b] / count as f64, hits[b] as f64 / count as f64)
            };
            if count > 0 {
                let gap = (accuracy - confidence).abs();
                ece += count as f64 / n as f64 * gap;
                mce = mce.max(gap);
            }
            ReliabilityBin {
                lower: b as f64 / n_bins as f64,
                upper: (b + 1) as f64 / n_bins as f64,
                confidence,
                accuracy,
                count,
            }
        })
        .collect();
    Ok(Calibration { ece, mce, bins })
}

/// Bin of confidence `c`: `ceil(c * M) - 1`, so bin `m` holds `(m/M, (m+1)/M]`, with 0 in the
/// first bin.
fn bin_of(c: f64, n_bins: usize) -> usize {
    let b = (c * n_bins as f64).ceil() as usize;
    b.saturating_sub(1).min(n_bins - 1)
}

/// Probabilities as the logits of temperature scaling: their natural logarithms (floored).
pub fn logits_of(probs: &[f32]) -> Vec<f64> {
    probs
        .iter()
        .map(|&p| f64::from(p).max(MIN_PROB).ln())
        .collect()
}

/// `softmax(logits / temperature)`.
pub fn softmax_with_temperature(logits: &[f64], temperature: f64) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits
        .iter()
        .map(|&z| ((z - max) / temperature).exp())
        .collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Probabilities after temperature scaling (`softmax(log p / T)`).
pub fn scale_probabilities(probs: &[f32], temperature: f64) -> Vec<f64> {
    softmax_with_temperature(&logits_of(probs), temperature)
}

/// Mean negative log-likelihood of the true classes under `softmax(z / T)`.
pub fn nll(logits: &[Vec<f64>], truth: &[usize], temperature: f64) -> f64 {
    let mut total = 0.0;
    for (z, &y) in logits.iter().zip(truth) {
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = z
            .iter()
            .map(|&v| ((v - max) / temperature).exp())
            .sum::<f64>()
            .ln();
        total += lse - (z[y] - max) / temperature;
    }
    total / logits.len().max(1) as f64
}

/// A fitted temperature and the NLL it improved, on the examples it was fitted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemperatureFit {
    pub temperature: f64,
    /// Examples used (those whose label the model knows).
    pub examples: usize,
    /// Mean NLL at T = 1 and at the fitted T.
    pub nll_before: f64,
    pub nll_after: f64,
    /// True when the optimum lies at an end of [`MIN_TEMPERATURE`, `MAX_TEMPERATURE`].
    pub at_bound: bool,
}

/// Fits one temperature on `probs` (one probability vector per example) with true class
/// indices `truth`, minimizing the mean NLL by golden-section search on `log T` over
/// [`MIN_TEMPERATURE`, `MAX_TEMPERATURE`].
pub fn fit_temperature(
    probs: &[Vec<f32>],
    truth: &[usize],
) -> Result<TemperatureFit, CalibrationError> {
    if probs.is_empty() {
        return Err(CalibrationError::NoExamples);
    }
    if probs.len() != truth.len() {
        return Err(CalibrationError::BadExample {
            index: probs.len().min(truth.len()),
            message: format!(
                "{} probability vectors but {} labels",
                probs.len(),
                truth.len()
            ),
        });
    }
    for (index, (p, &y)) in probs.iter().zip(truth).enumerate() {
        if y >= p.len() {
            return Err(CalibrationError::BadExample {
                index,
                message: format!("label index {y} but only {} probabilities", p.len()),
            });
        }
        if p.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(CalibrationError::BadExample {
                index,
                message: "probabilities must be finite and non-negative".into(),
            });
        }
    }
    let logits: Vec<Vec<f64>> = probs.iter().map(|p| logits_of(p)).collect();
    let f = |log_t: f64| nll(&logits, truth, log_t.exp());
    let (mut a, mut b) = (MIN_TEMPERATURE.ln(), MAX_TEMPERATURE.ln());
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - inv_phi * (b - a);
    let mut d = a + inv_phi * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    // 0.618^90 * ln(1e4) < 1e-17: the bracket shrinks below f64 resolution of log T.
    for _ in 0..90 {
        if fc <= fd {
            b = d;
            d = c;
            fd = fc;
            c = b - inv_phi * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + inv_phi * (b - a);
            fd = f(d);
        }
    }
    let log_t = (a + b) / 2.0;
    let temperature = log_t.exp();
    let span = MAX_TEMPERATURE.ln() - MIN_TEMPERATURE.ln();
    let at_bound = (log_t - MIN_TEMPERATURE.ln()).abs() < 1e-6 * span
        || (MAX_TEMPERATURE.ln() - log_t).abs() < 1e-6 * span;
    Ok(TemperatureFit {
        temperature,
        examples: probs.len(),
        nll_before: nll(&logits, truth, 1.0),
        nll_after: nll(&logits, truth, temperature),
        at_bound,
    })
}

/// The contents of `temperature.json` in a model folder. The server applies it to the model's
/// probabilities (`softmax(log p / T)`) in a later issue; evaluation reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureFile {
    pub format_version: u32,
    pub temperature: f64,
    /// The validation data it was fitted on.
    pub fitted_on: String,
    pub examples: usize,
    pub nll_before: f64,
    pub nll_after: f64,
    pub method: String,
    pub created_by: String,
}

impl TemperatureFile {
    pub fn new(fit: &TemperatureFit, fitted_on: &Path) -> Self {
        Self {
            format_version: 1,
            temperature: fit.temperature,
            fitted_on: fitted_on.display().to_string(),
            examples: fit.examples,
            nll_before: fit.nll_before,
            nll_after: fit.nll_after,
            method: "temperature scaling of log-probabilities, NLL minimized by golden-section \
                     search on log T (Guo et al. 2017)"
                .into(),
            created_by: format!("taxon {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Writes `dir/temperature.json` through a temporary file renamed into place.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, CalibrationError> {
        let path = dir.join(TEMPERATURE_JSON);
        let text = serde_json::to_string_pretty(self).map_err(|source| CalibrationError::Json {
            path: path.clone(),
            source,
        })?;
        let tmp = dir.join(format!(".{TEMPERATURE_JSON}.tmp"));
        std::fs::write(&tmp, text + "\n").map_err(|source| CalibrationError::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| CalibrationError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Reads `dir/temperature.json`; `Ok(None)` when the folder has none.
    pub fn read(dir: &Path) -> Result<Option<Self>, CalibrationError> {
        let path = dir.join(TEMPERATURE_JSON);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CalibrationError::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| CalibrationError::Json { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() < tol
    }

    /// Worked by hand with 3 bins ([0,1/3], (1/3,2/3], (2/3,1]):
    /// confidences 0.2 (wrong) | 0.5 (right), 0.6 (wrong) | 0.9 (right), 0.8 (right), 1.0 (wrong)
    /// bin 0: conf 0.2, acc 0, n 1 -> gap 0.2
    /// bin 1: conf 0.55, acc 0.5, n 2 -> gap 0.05
    /// bin 2: conf 0.9, acc 2/3, n 3 -> gap 0.2333...
    /// ECE = (1 * 0.2 + 2 * 0.05 + 3 * 0.23333) / 6 = 1.0 / 6
    #[test]
    fn ece_hand_computed_example() {
        let conf = [0.2, 0.5, 0.6, 0.9, 0.8, 1.0];
        let correct = [false, true, false, true, true, false];
        let c = reliability(&conf, &correct, 3).unwrap();
        assert_eq!(
            c.bins.iter().map(|b| b.count).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(close(c.bins[1].confidence, 0.55, 1e-12));
        assert!(close(c.bins[1].accuracy, 0.5, 1e-12));
        assert!(close(c.bins[2].accuracy, 2.0 / 3.0, 1e-12));
        assert!(close(c.ece, 1.0 / 6.0, 1e-12), "{}", c.ece);
        assert!(close(c.mce, 0.7 / 3.0, 1e-12), "{}", c.mce);
    }

    #[test]
    fn bin_edges_are_right_inclusive_and_zero_goes_first() {
        assert_eq!(bin_of(0.0, 15), 0);
        assert_eq!(bin_of(1.0 / 15.0, 15), 0);
        assert_eq!(bin_of(1.0 / 15.0 + 1e-9, 15), 1);
        assert_eq!(bin_of(1.0, 15), 14);
        let c = reliability(&[0.0, 1.0], &[false, true], ECE_BINS).unwrap();
        assert_eq!(c.bins.len(), 15);
        assert_eq!(c.bins[0].count, 1);
        assert_eq!(c.bins[14].count, 1);
        assert!(close(c.ece, 0.0, 1e-12));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert!(matches!(
            reliability(&[0.5], &[true], 0),
            Err(CalibrationError::BadBins { bins: 0 })
        ));
        assert!(matches!(
            reliability(&[1.5], &[true], 15),
            Err(CalibrationError::BadExample { index: 0, .. })
        ));
        assert!(matches!(
            fit_temperature(&[], &[]),
            Err(CalibrationError::NoExamples)
        ));
        assert!(matches!(
            fit_temperature(&[vec![0.5, 0.5]], &[2]),
            Err(CalibrationError::BadExample { index: 0, .. })
        ));
    }

    /// A deterministic over-confident classifier: 3 classes, right 70% of the time, but it
    /// always puts 0.98 on its guess. Temperature scaling must soften it (T > 1) and the ECE
    /// must drop, with accuracy unchanged.
    fn overconfident(n: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut probs = Vec::new();
        let mut truth = Vec::new();
        for i in 0..n {
            let y = i % 3;
            let guess = if i % 10 < 7 { y } else { (y + 1) % 3 };
            let mut p = vec![0.01f32; 3];
            p[guess] = 0.98;
            probs.push(p);
            truth.push(y);
        }
        (probs, truth)
    }

    fn ece_of(probs: &[Vec<f64>], truth: &[usize]) -> f64 {
        let (conf, correct): (Vec<f64>, Vec<bool>) = probs
            .iter()
            .zip(truth)
            .map(|(p, &y)| {
                let best = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
                (p[best], best == y)
            })
            .unzip();
        reliability(&conf, &correct, ECE_BINS).unwrap().ece
    }

    #[test]
    fn temperature_scaling_fixes_an_overconfident_model() {
        let (probs, truth) = overconfident(300);
        let fit = fit_temperature(&probs, &truth).unwrap();
        assert!(fit.temperature > 1.0, "T = {}", fit.temperature);
        assert!(!fit.at_bound);
        assert!(fit.nll_after < fit.nll_before);
        let before: Vec<Vec<f64>> = probs
            .iter()
            .map(|p| p.iter().map(|&v| f64::from(v)).collect())
            .collect();
        let after: Vec<Vec<f64>> = probs
            .iter()
            .map(|p| scale_probabilities(p, fit.temperature))
            .collect();
        let (e0, e1) = (ece_of(&before, &truth), ece_of(&after, &truth));
        assert!(close(e0, 0.28, 1e-6), "ECE before {e0}");
        assert!(e1 < 0.02, "ECE after {e1} (before {e0})");
        // The NLL optimum puts 0.7 on the guess: (0.98/0.01)^(1/T) = 0.7 / 0.15.
        let expected_t = (98f64).ln() / (0.7f64 / 0.15).ln();
        assert!(
            close(fit.temperature, expected_t, 1e-4),
            "T = {} expected {expected_t}",
            fit.temperature
        );
    }

    #[test]
    fn underconfident_model_gets_t_below_one() {
        // Always right, but only 0.5 on the right class of 3.
        let probs: Vec<Vec<f32>> = (0..30)
            .map(|i| {
                let mut p = vec![0.25f32; 3];
                p[i % 3] = 0.5;
                p
            })
            .collect();
        let truth: Vec<usize> = (0..30).map(|i| i % 3).collect();
        let fit = fit_temperature(&probs, &truth).unwrap();
        assert!(fit.temperature < 1.0, "T = {}", fit.temperature);
        assert!(fit.nll_after < fit.nll_before);
    }

    #[test]
    fn scaling_keeps_the_argmax_and_sums_to_one() {
        let p = [0.1f32, 0.7, 0.2];
        for t in [0.3, 1.0, 4.0] {
            let q = scale_probabilities(&p, t);
            assert!(close(q.iter().sum::<f64>(), 1.0, 1e-12));
            assert!(q[1] > q[0] && q[1] > q[2]);
        }
        let q = scale_probabilities(&p, 1.0);
        assert!(close(q[1], 0.7, 1e-6));
    }

    #[test]
    fn temperature_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(TemperatureFile::read(dir.path()).unwrap().is_none());
        let fit = TemperatureFit {
            temperature: 1.5,
            examples: 10,
            nll_before: 0.9,
            nll_after: 0.5,
            at_bound: false,
        };
        let file = TemperatureFile::new(&fit, Path::new("val.jsonl"));
        let path = file.write(dir.path()).unwrap();
        assert!(path.ends_with(TEMPERATURE_JSON));
        assert_eq!(TemperatureFile::read(dir.path()).unwrap(), Some(file));
    }
}

//! Drift of a current profile against the reference profile: one test per feature, a
//! threshold per feature, and the verdict.
//!
//! Numeric features use the Wasserstein-1 distance between the two histograms divided by the
//! reference's standard deviation (floored at the binning's [`min_spread`]: 0.01 for shares and
//! probabilities, one token for lengths), so the distance is in units of the reference's own
//! spread and one threshold (default 0.05, the seed's) means the same shift for every feature:
//! 0.05 is a move of the whole distribution by 5% of a standard deviation. The predicted
//! labels use Pearson's chi-square test of homogeneity (reference counts vs current counts);
//! its value is the p-value, and the feature drifts when it falls below the threshold
//! (default 0.01).
//!
//! A window of a few hundred predictions moves the distance by chance alone (for 200 texts
//! against a reference of 200, by about 0.1 standard deviations), more than the seed's 0.05.
//! So the threshold a numeric feature is held to is the larger of the configured one and the
//! chance level for these two sample sizes: the 99th percentile (`null_quantile`) of the same
//! distance between random splits of the pooled values into groups of the reference's and the
//! current's sizes (a permutation test, 200 seeded permutations by default; `permutations: 0`
//! turns it off). The reported `threshold` is the one applied, and `noise` the chance level.
//!
//! [`min_spread`]: crate::sketch::Binning::min_spread

use std::collections::BTreeMap;
use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::chisq;
use crate::error::MonitorError;
use crate::profile::{PREDICTED_LABEL, Profile};
use crate::sketch::Histogram;
use crate::wasserstein::wasserstein_1_hist;

/// Default threshold of the normalized Wasserstein distance (the seed's 0.05).
pub const DEFAULT_WASSERSTEIN: f64 = 0.05;
/// Default p-value below which the predicted labels drift.
pub const DEFAULT_CHI_SQUARE_P: f64 = 0.01;
/// Default number of permutations of the chance level.
pub const DEFAULT_PERMUTATIONS: usize = 200;
/// Default quantile of the permutation distances taken as the chance level.
pub const DEFAULT_NULL_QUANTILE: f64 = 0.99;
/// Pooled values beyond this many are scaled down (keeping the two sides' proportions) before
/// permuting; the chance level of samples this large is far below any useful threshold.
const MAX_POOLED: u64 = 50_000;

/// Statistic names, as reported.
pub const WASSERSTEIN_NORMED: &str = "wasserstein_normed";
pub const CHI_SQUARE_P: &str = "chi_square_p_value";

/// Thresholds, from defaults or a YAML file:
///
/// ```yaml
/// wasserstein: 0.05      # every numeric feature
/// chi_square_p: 0.01     # predicted_label
/// permutations: 200      # of the chance level (0: fixed thresholds only)
/// null_quantile: 0.99
/// features:              # per feature, overriding the above
///   tokens: 0.1
///   "score:sport": 0.08
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    pub wasserstein: f64,
    pub chi_square_p: f64,
    pub permutations: usize,
    pub null_quantile: f64,
    pub features: BTreeMap<String, f64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            wasserstein: DEFAULT_WASSERSTEIN,
            chi_square_p: DEFAULT_CHI_SQUARE_P,
            permutations: DEFAULT_PERMUTATIONS,
            null_quantile: DEFAULT_NULL_QUANTILE,
            features: BTreeMap::new(),
        }
    }
}

impl Thresholds {
    /// Reads a thresholds file (YAML); unknown keys and negative or non-finite values are
    /// errors naming the file.
    pub fn load(path: &Path) -> Result<Self, MonitorError> {
        let text = std::fs::read_to_string(path).map_err(|source| MonitorError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let t: Self = serde_yaml_ng::from_str(&text).map_err(|e| MonitorError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let bad = std::iter::once(("wasserstein", t.wasserstein))
            .chain(std::iter::once(("chi_square_p", t.chi_square_p)))
            .chain(std::iter::once(("null_quantile", t.null_quantile)))
            .chain(t.features.iter().map(|(k, v)| (k.as_str(), *v)))
            .find(|(_, v)| !v.is_finite() || *v < 0.0);
        let bad = bad.or((t.null_quantile > 1.0).then_some(("null_quantile", t.null_quantile)));
        if let Some((k, v)) = bad {
            return Err(MonitorError::Invalid {
                path: path.to_path_buf(),
                message: format!("threshold `{k}` is {v}: it must be a number >= 0"),
            });
        }
        Ok(t)
    }

    fn numeric(&self, name: &str) -> f64 {
        self.features.get(name).copied().unwrap_or(self.wasserstein)
    }

    fn categorical(&self, name: &str) -> f64 {
        self.features
            .get(name)
            .copied()
            .unwrap_or(self.chi_square_p)
    }
}

/// One feature's test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    pub name: String,
    pub statistic: String,
    pub value: f64,
    pub threshold: f64,
    pub drift: bool,
    /// The chance level of a numeric feature's distance for these sample sizes (see the
    /// module's documentation), when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
}

/// Every feature's test, and whether any drifted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub drift: bool,
    /// Predictions in the current profile.
    pub rows: u64,
    pub features: Vec<FeatureDrift>,
}

/// The normalized Wasserstein distance of `name` between two profiles; `None` when the feature
/// is empty on either side.
pub fn normalized_wasserstein(reference: &Profile, current: &Profile, name: &str) -> Option<f64> {
    let r = reference.numeric.get(name)?;
    let c = current.numeric.get(name)?;
    if r.binning != c.binning {
        return None;
    }
    let w = wasserstein_1_hist(r, c)?;
    Some(w / spread(r))
}

/// What a distance on `h`'s feature is divided by.
fn spread(h: &Histogram) -> f64 {
    h.std().max(h.binning.min_spread())
}

/// The `q` quantile of the normalized distance between random splits of the pooled values of
/// `r` and `c` into groups of their sizes (`perms` seeded permutations).
pub fn chance_level(r: &Histogram, c: &Histogram, perms: usize, q: f64) -> Option<f64> {
    if perms == 0 || r.count == 0 || c.count == 0 {
        return None;
    }
    let norm = spread(r);
    let mut pooled: BTreeMap<u32, u64> = r.bins.clone();
    for (&b, &k) in &c.bins {
        *pooled.entry(b).or_insert(0) += k;
    }
    let total = r.count + c.count;
    let scale = |k: u64| {
        if total > MAX_POOLED {
            ((k as f64 * MAX_POOLED as f64 / total as f64).round() as u64).max(1)
        } else {
            k
        }
    };
    let centers: Vec<f64> = pooled.keys().map(|&b| r.binning.center(b)).collect();
    let mut values: Vec<u32> = Vec::new();
    for (i, &k) in pooled.values().enumerate() {
        values.extend(std::iter::repeat_n(i as u32, scale(k) as usize));
    }
    let n_ref = (scale(r.count) as usize)
        .min(values.len().saturating_sub(1))
        .max(1);
    let n_cur = values.len() - n_ref;
    if n_cur == 0 {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x7a78_6f6e);
    // Each permutation draws only the smaller group, as a uniformly random subset of the pooled
    // values (a partial shuffle); the larger group is the rest. So a permutation costs the
    // smaller group's size plus the bins, not the pool's size: a 200-row reference against a
    // 50,000-prediction log shuffles 200 values, not 50,200.
    let mut pooled_counts = vec![0u64; centers.len()];
    for &v in &values {
        pooled_counts[v as usize] += 1;
    }
    let small = n_ref.min(n_cur);
    let (mut a, mut b) = (vec![0u64; centers.len()], vec![0u64; centers.len()]);
    let mut dists = Vec::with_capacity(perms);
    for _ in 0..perms {
        let (drawn, _) = values.partial_shuffle(&mut rng, small);
        let (s, rest) = if n_ref <= n_cur {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        s.iter_mut().for_each(|x| *x = 0);
        for &v in drawn.iter() {
            s[v as usize] += 1;
        }
        for ((r, &p), &k) in rest.iter_mut().zip(&pooled_counts).zip(s.iter()) {
            *r = p - k;
        }
        let (mut ca, mut cb, mut w) = (0u64, 0u64, 0.0f64);
        for j in 0..centers.len().saturating_sub(1) {
            ca += a[j];
            cb += b[j];
            w += (ca as f64 / n_ref as f64 - cb as f64 / n_cur as f64).abs()
                * (centers[j + 1] - centers[j]);
        }
        dists.push(w / norm);
    }
    dists.sort_by(f64::total_cmp);
    let idx = ((q.clamp(0.0, 1.0) * perms as f64).ceil() as usize).clamp(1, perms) - 1;
    Some(dists[idx])
}

/// Tests every feature present on both sides (numeric features in name order, then
/// `predicted_label`). Profiles of different label sets are an error.
pub fn compare(
    reference: &Profile,
    current: &Profile,
    thresholds: &Thresholds,
) -> Result<DriftReport, MonitorError> {
    if reference.labels != current.labels {
        return Err(MonitorError::Labels {
            expected: reference.labels.clone(),
            found: current.labels.clone(),
        });
    }
    let mut features = Vec::new();
    for name in reference.numeric.keys() {
        if let Some(value) = normalized_wasserstein(reference, current, name) {
            let noise = chance_level(
                &reference.numeric[name],
                &current.numeric[name],
                thresholds.permutations,
                thresholds.null_quantile,
            );
            let threshold = thresholds.numeric(name).max(noise.unwrap_or(0.0));
            features.push(FeatureDrift {
                name: name.clone(),
                statistic: WASSERSTEIN_NORMED.into(),
                value,
                threshold,
                drift: value > threshold,
                noise,
            });
        }
    }
    if let Some(t) = chisq::homogeneity(
        &reference.predicted_label.counts,
        &current.predicted_label.counts,
    ) {
        let threshold = thresholds.categorical(PREDICTED_LABEL);
        features.push(FeatureDrift {
            name: PREDICTED_LABEL.into(),
            statistic: CHI_SQUARE_P.into(),
            value: t.p_value,
            threshold,
            drift: t.p_value < threshold,
            noise: None,
        });
    }
    Ok(DriftReport {
        drift: features.iter().any(|f| f.drift),
        rows: current.rows,
        features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Observation;

    fn profile(n: usize, shift: f32, tokens: usize, label_a_every: usize) -> Profile {
        let labels = vec!["a".to_string(), "b".to_string()];
        let mut p = Profile::new("linear", &labels, "test");
        for i in 0..n {
            let base = 0.5 + 0.4 * ((i % 10) as f32 / 10.0);
            let a = i % label_a_every == 0;
            let top = (base + shift).min(1.0);
            let scores = if a {
                [top, 1.0 - top]
            } else {
                [1.0 - top, top]
            };
            p.observe(&Observation {
                tokens: tokens + i % 7,
                unknown_share: Some(0.0),
                scores: &scores,
                embedding: None,
            });
        }
        p
    }

    fn feature<'a>(r: &'a DriftReport, name: &str) -> &'a FeatureDrift {
        r.features.iter().find(|f| f.name == name).unwrap()
    }

    #[test]
    fn same_distribution_does_not_drift() {
        let r = compare(
            &profile(1400, 0.0, 50, 2),
            &profile(700, 0.0, 50, 2),
            &Thresholds::default(),
        )
        .unwrap();
        assert!(!r.drift, "{r:?}");
        assert_eq!(r.rows, 700);
        assert!(feature(&r, "tokens").value < 1e-9);
    }

    #[test]
    fn longer_texts_drift_on_tokens_only() {
        let r = compare(
            &profile(1400, 0.0, 50, 2),
            &profile(700, 0.0, 60, 2),
            &Thresholds::default(),
        )
        .unwrap();
        assert!(r.drift);
        let t = feature(&r, "tokens");
        assert!(t.drift && t.statistic == WASSERSTEIN_NORMED);
        // A shift of 10 tokens on a spread of 2 tokens: 5 standard deviations.
        assert!((t.value - 10.0 / 2.0).abs() < 0.01, "{t:?}");
        assert!(!feature(&r, "confidence").drift);
        assert!(!feature(&r, PREDICTED_LABEL).drift);
    }

    #[test]
    fn label_shift_drifts_on_predicted_label() {
        let r = compare(
            &profile(1400, 0.0, 50, 2),
            &profile(700, 0.0, 50, 4),
            &Thresholds::default(),
        )
        .unwrap();
        let l = feature(&r, PREDICTED_LABEL);
        assert!(l.drift && l.value < 1e-6, "{l:?}");
    }

    #[test]
    fn per_feature_threshold_overrides_the_default() {
        let mut t = Thresholds::default();
        t.features.insert("tokens".into(), 10.0);
        let r = compare(&profile(1400, 0.0, 50, 2), &profile(700, 0.0, 60, 2), &t).unwrap();
        assert!(!feature(&r, "tokens").drift);
        assert_eq!(feature(&r, "tokens").threshold, 10.0);
    }

    #[test]
    fn small_samples_are_held_to_their_chance_level() {
        // Two halves of one distribution in small groups: above 0.05 by chance, below the
        // chance level.
        let mut r = Histogram::new(crate::sketch::Binning::Unit);
        let mut c = Histogram::new(crate::sketch::Binning::Unit);
        let mut x = 0.123_f64;
        for i in 0..400 {
            x = (x * 9301.0 + 0.49297).fract();
            if i % 2 == 0 { r.add(x) } else { c.add(x) }
        }
        let noise = chance_level(&r, &c, 200, 0.99).unwrap();
        assert!(noise > 0.05 && noise < 0.5, "{noise}");
        assert_eq!(chance_level(&r, &c, 200, 0.99), Some(noise), "seeded");
        assert_eq!(chance_level(&r, &c, 0, 0.99), None);
        // Shifting every value by 0.3 goes far beyond it.
        let mut far = Histogram::new(crate::sketch::Binning::Unit);
        for (v, k) in c.points() {
            for _ in 0..k {
                far.add(v * 0.7 + 0.3);
            }
        }
        let w = crate::wasserstein::wasserstein_1_hist(&r, &far).unwrap() / r.std();
        assert!(w > chance_level(&r, &far, 200, 0.99).unwrap());
    }

    #[test]
    fn thresholds_file_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.yaml");
        std::fs::write(&p, "wasserstein: 0.1\nfeatures:\n  tokens: 0.2\n").unwrap();
        let t = Thresholds::load(&p).unwrap();
        assert_eq!(
            (t.wasserstein, t.chi_square_p, t.features["tokens"]),
            (0.1, DEFAULT_CHI_SQUARE_P, 0.2)
        );
        std::fs::write(&p, "wasserstien: 0.1\n").unwrap();
        let e = Thresholds::load(&p).unwrap_err().to_string();
        assert!(e.contains("t.yaml") && e.contains("wasserstien"), "{e}");
        std::fs::write(&p, "features:\n  tokens: -1\n").unwrap();
        assert!(
            Thresholds::load(&p)
                .unwrap_err()
                .to_string()
                .contains("tokens")
        );
    }
}

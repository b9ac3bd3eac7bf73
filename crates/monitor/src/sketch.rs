//! Bounded, mergeable sketches of one feature: a fixed-bin histogram for numeric features and
//! label counts for categorical ones.
//!
//! Bins are fixed by the feature's kind, not by the data, so two sketches of the same feature
//! always share their bins: merging is adding counts, and comparing needs no re-binning. The
//! size is bounded whatever the number of values: [`Binning::Unit`] has 1,000 bins of width
//! 0.001 on [0, 1] (probabilities, shares); [`Binning::Count`] has one bin per integer up to
//! 255 and then bins 2% wide (geometric) up to 2^32, about 840 bins (token counts);
//! [`Binning::Standard`] has 1,600 bins of 0.01 on [-8, 8] (standardized values: projected
//! embeddings). Exact
//! count, sum and sum of squares ride along, so the mean and spread are exact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bins of a [`Histogram`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binning {
    /// Values in [0, 1] (clamped), 1,000 equal bins.
    Unit,
    /// Non-negative counts: integers 0..=255 exactly, then 2%-wide geometric bins.
    Count,
    /// Standardized values (mean 0, standard deviation 1 on the reference) in [-8, 8]
    /// (clamped), 1,600 equal bins.
    Standard,
}

const UNIT_BINS: u32 = 1000;
const EXACT_COUNTS: u32 = 256;
const COUNT_RATIO: f64 = 1.02;
const COUNT_MAX: f64 = 4_294_967_296.0;
const STANDARD_LIMIT: f64 = 8.0;
const STANDARD_BINS: u32 = 1600;

impl Binning {
    /// The bin of `v` (a finite value).
    pub fn bin(self, v: f64) -> u32 {
        match self {
            Binning::Unit => ((v.clamp(0.0, 1.0) * f64::from(UNIT_BINS)) as u32).min(UNIT_BINS - 1),
            Binning::Count => {
                let v = v.clamp(0.0, COUNT_MAX);
                if v < f64::from(EXACT_COUNTS) {
                    v.round() as u32
                } else {
                    EXACT_COUNTS
                        + ((v / f64::from(EXACT_COUNTS)).ln() / COUNT_RATIO.ln()).floor() as u32
                }
            }
            Binning::Standard => {
                let unit = (v.clamp(-STANDARD_LIMIT, STANDARD_LIMIT) + STANDARD_LIMIT)
                    / (2.0 * STANDARD_LIMIT);
                ((unit * f64::from(STANDARD_BINS)) as u32).min(STANDARD_BINS - 1)
            }
        }
    }

    /// The value a bin stands for: its centre (the integer itself for exact counts, the
    /// geometric middle of a wider count bin).
    pub fn center(self, bin: u32) -> f64 {
        match self {
            Binning::Unit => (f64::from(bin) + 0.5) / f64::from(UNIT_BINS),
            Binning::Count if bin < EXACT_COUNTS => f64::from(bin),
            Binning::Count => {
                f64::from(EXACT_COUNTS) * COUNT_RATIO.powf(f64::from(bin - EXACT_COUNTS) + 0.5)
            }
            Binning::Standard => {
                (f64::from(bin) + 0.5) / f64::from(STANDARD_BINS) * (2.0 * STANDARD_LIMIT)
                    - STANDARD_LIMIT
            }
        }
    }

    /// The smallest spread used to normalize a distance on these bins (see
    /// [`crate::drift`]): 0.01 for unit values, one token for counts.
    pub fn min_spread(self) -> f64 {
        match self {
            Binning::Unit | Binning::Standard => 0.01,
            Binning::Count => 1.0,
        }
    }
}

/// A fixed-bin histogram with exact moments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub binning: Binning,
    /// Values seen (non-finite values are not counted).
    pub count: u64,
    pub sum: f64,
    pub sum_sq: f64,
    /// Occupied bins only: bin -> count.
    pub bins: BTreeMap<u32, u64>,
}

impl Histogram {
    pub fn new(binning: Binning) -> Self {
        Self {
            binning,
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
            bins: BTreeMap::new(),
        }
    }

    /// Adds one value; NaN and infinities are ignored.
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.count += 1;
        self.sum += v;
        self.sum_sq += v * v;
        *self.bins.entry(self.binning.bin(v)).or_insert(0) += 1;
    }

    /// Adds every value of `other` (same binning; a different one is ignored and reported).
    pub fn merge(&mut self, other: &Histogram) -> bool {
        if other.binning != self.binning {
            return false;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        for (&b, &c) in &other.bins {
            *self.bins.entry(b).or_insert(0) += c;
        }
        true
    }

    /// Mean of the values (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// Population standard deviation of the values (0 when empty).
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = self.count as f64;
        let var = (self.sum_sq / n - self.mean().powi(2)).max(0.0);
        var.sqrt()
    }

    /// The value at quantile `q` (0 to 1) by bin centres; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let target = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (&b, &c) in &self.bins {
            seen += c;
            if seen >= target {
                return Some(self.binning.center(b));
            }
        }
        self.bins.keys().last().map(|&b| self.binning.center(b))
    }

    /// (bin centre, count) for every occupied bin, in increasing order.
    pub fn points(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bins.iter().map(|(&b, &c)| (self.binning.center(b), c))
    }
}

/// Counts of a categorical feature (predicted labels).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Categorical {
    pub count: u64,
    pub counts: BTreeMap<String, u64>,
}

impl Categorical {
    pub fn add(&mut self, value: &str) {
        self.count += 1;
        match self.counts.get_mut(value) {
            Some(c) => *c += 1,
            None => {
                self.counts.insert(value.to_string(), 1);
            }
        }
    }

    pub fn merge(&mut self, other: &Categorical) {
        self.count += other.count;
        for (k, &c) in &other.counts {
            *self.counts.entry(k.clone()).or_insert(0) += c;
        }
    }

    /// The share of `value` (0 when empty).
    pub fn share(&self, value: &str) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.counts.get(value).copied().unwrap_or(0) as f64 / self.count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_bins_cover_zero_to_one_and_clamp() {
        let b = Binning::Unit;
        assert_eq!(b.bin(0.0), 0);
        assert_eq!(b.bin(0.0015), 1);
        assert_eq!(b.bin(1.0), 999);
        assert_eq!(b.bin(7.0), 999);
        assert_eq!(b.bin(-1.0), 0);
        assert!((b.center(1) - 0.0015).abs() < 1e-12);
    }

    #[test]
    fn count_bins_are_exact_then_two_percent_wide() {
        let b = Binning::Count;
        for v in [0u32, 1, 17, 255] {
            assert_eq!(b.bin(f64::from(v)), v);
            assert_eq!(b.center(v), f64::from(v));
        }
        for v in [256.0, 300.0, 1000.0, 12_345.0, 1e6] {
            let c = b.center(b.bin(v));
            assert!((c - v).abs() / v <= 0.011, "{v} -> centre {c}");
        }
        assert!(b.bin(1e12) < 1200);
    }

    #[test]
    fn merge_equals_adding_everything_to_one() {
        let (mut a, mut b, mut all) = (
            Histogram::new(Binning::Count),
            Histogram::new(Binning::Count),
            Histogram::new(Binning::Count),
        );
        for v in 0..500 {
            let x = f64::from(v * 7 % 613);
            if v % 2 == 0 {
                a.add(x)
            } else {
                b.add(x)
            }
            all.add(x);
        }
        assert!(a.merge(&b));
        assert_eq!(a, all);
        assert!(!a.merge(&Histogram::new(Binning::Unit)));
    }

    #[test]
    fn moments_are_exact_and_nan_is_ignored() {
        let mut h = Histogram::new(Binning::Unit);
        for v in [0.1, 0.2, 0.3, f64::NAN, f64::INFINITY] {
            h.add(v);
        }
        assert_eq!(h.count, 3);
        assert!((h.mean() - 0.2).abs() < 1e-12);
        assert!((h.std() - (0.02f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((h.quantile(0.5).unwrap() - 0.2005).abs() < 1e-9);
    }
}

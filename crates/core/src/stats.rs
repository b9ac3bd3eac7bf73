//! Dataset statistics recorded with every version and printed by `taxon data stats`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Text length quantiles, in Unicode scalar values (chars).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LengthQuantiles {
    pub min: u64,
    pub p25: u64,
    pub p50: u64,
    pub p75: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

/// What a dataset looks like: size, labels, lengths, vocabulary, duplicates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    pub rows: u64,
    /// Rows per label (unlabelled rows are not counted here).
    pub label_counts: BTreeMap<String, u64>,
    pub text_length_chars: LengthQuantiles,
    /// Distinct lower-cased whitespace/punctuation-separated words.
    pub vocabulary_size: u64,
    /// Share of rows whose normalized text already appeared earlier (0.0..=1.0).
    pub duplicate_rate: f64,
    /// Rows skipped by `--on-error skip` while computing these statistics.
    #[serde(default)]
    pub skipped_rows: u64,
}

impl DatasetStats {
    /// Share of each label among labelled rows.
    pub fn label_shares(&self) -> BTreeMap<String, f64> {
        let total: u64 = self.label_counts.values().sum();
        self.label_counts
            .iter()
            .map(|(k, v)| {
                let share = if total == 0 {
                    0.0
                } else {
                    *v as f64 / total as f64
                };
                (k.clone(), share)
            })
            .collect()
    }
}

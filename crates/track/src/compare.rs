//! Runs side by side: the union of their params and final metrics, one row per key, with the
//! rows whose values differ marked.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::record::RunRecord;

/// One key across runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row<T> {
    pub key: String,
    /// One value per run, in the order the runs were given (`None`: the run lacks the key).
    pub values: Vec<Option<T>>,
    /// Not every run has the same value.
    pub differs: bool,
}

/// Runs compared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub runs: Vec<String>,
    pub names: Vec<String>,
    pub params: Vec<Row<String>>,
    pub metrics: Vec<Row<f64>>,
}

fn rows<T: Clone + PartialEq>(
    keys: BTreeSet<&String>,
    get: impl Fn(&String) -> Vec<Option<T>>,
) -> Vec<Row<T>> {
    keys.into_iter()
        .map(|k| {
            let values = get(k);
            let differs = values.windows(2).any(|w| w[0] != w[1]);
            Row {
                key: k.clone(),
                values,
                differs,
            }
        })
        .collect()
}

/// Puts `runs` side by side.
pub fn compare(runs: &[RunRecord]) -> Comparison {
    let param_keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.params.keys()).collect();
    let metric_keys: BTreeSet<&String> =
        runs.iter().flat_map(|r| r.summary.metrics.keys()).collect();
    Comparison {
        runs: runs.iter().map(|r| r.summary.id.clone()).collect(),
        names: runs.iter().map(|r| r.summary.name.clone()).collect(),
        params: rows(param_keys, |k| {
            runs.iter().map(|r| r.params.get(k).cloned()).collect()
        }),
        metrics: rows(metric_keys, |k| {
            runs.iter()
                .map(|r| r.summary.metrics.get(k).copied())
                .collect()
        }),
    }
}

//! The promotion gate: moving a gated alias (`production`) to a version whose evaluation
//! metric is worse than the current holder's is refused unless forced.
//!
//! The metric is the one asked for, or the first of [`DEFAULT_GATE_METRICS`] that both
//! versions recorded. Higher is better, except for keys that name a loss or a calibration
//! error (`*loss`, `ece`, `mce`, `nll`), where lower is better. A missing or NaN value does not
//! compare: the gate refuses and names what each version has.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::ModelVersion;

/// The aliases whose moves the gate checks.
pub const GATED_ALIASES: &[&str] = &["production"];

/// The metrics the gate compares when none is named, in order of preference.
pub const DEFAULT_GATE_METRICS: &[&str] = &[
    "eval.test.macro_f1",
    "eval.test.accuracy",
    "validation_macro_f1",
    "validation_accuracy",
];

/// True when moves of `alias` go through the gate.
pub fn is_gated(alias: &str) -> bool {
    GATED_ALIASES.contains(&alias)
}

/// True for metrics where a lower value is better (losses and calibration errors).
pub fn lower_is_better(metric: &str) -> bool {
    let last = metric.rsplit('.').next().unwrap_or(metric);
    last.ends_with("loss") || matches!(last, "ece" | "mce" | "nll")
}

/// Why the gate refused a move. `Display` says what `--force` would override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GateRefusal {
    /// The candidate's metric is worse than the current holder's.
    Worse {
        name: String,
        alias: String,
        metric: String,
        candidate: u64,
        candidate_value: f64,
        current: u64,
        current_value: f64,
    },
    /// No metric both versions recorded (the named one, or any default one).
    NoCommonMetric {
        name: String,
        alias: String,
        /// The metrics looked for, in order.
        tried: Vec<String>,
        candidate: u64,
        candidate_has: Vec<String>,
        current: u64,
        current_has: Vec<String>,
    },
}

impl GateRefusal {
    /// The refusal without the hint about `--force` (what the history records when forced).
    pub fn summary(&self) -> String {
        match self {
            Self::Worse {
                name,
                alias,
                metric,
                candidate,
                candidate_value,
                current,
                current_value,
            } => {
                let direction = if lower_is_better(metric) {
                    "higher (lower is better)"
                } else {
                    "lower"
                };
                format!(
                    "{name} v{candidate} has {metric} = {candidate_value:.4}, {direction} than \
                     {current_value:.4} of v{current}, the current {alias}"
                )
            }
            Self::NoCommonMetric {
                name,
                alias,
                tried,
                candidate,
                candidate_has,
                current,
                current_has,
            } => format!(
                "{name} v{candidate} and v{current} (the current {alias}) have no metric in \
                 common to compare (looked for {}); v{candidate} has {}; v{current} has {}",
                tried.join(", "),
                list_or_none(candidate_has),
                list_or_none(current_has),
            ),
        }
    }
}

impl fmt::Display for GateRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alias = match self {
            Self::Worse { alias, .. } | Self::NoCommonMetric { alias, .. } => alias,
        };
        write!(
            f,
            "promotion to {alias} refused: {}; --force overrides (and is recorded in the history)",
            self.summary()
        )
    }
}

/// What the gate found when it let a move through.
#[derive(Clone, Debug, PartialEq)]
pub struct GatePass {
    pub metric: String,
    pub candidate_value: f64,
    pub current_value: f64,
}

/// Compares `candidate` with `current` (the version now at `alias`) on `metric`, or on the
/// first default metric both have.
pub fn check(
    alias: &str,
    candidate: &ModelVersion,
    current: &ModelVersion,
    metric: Option<&str>,
) -> Result<GatePass, GateRefusal> {
    let tried: Vec<String> = match metric {
        Some(m) => vec![m.to_string()],
        None => DEFAULT_GATE_METRICS.iter().map(|m| m.to_string()).collect(),
    };
    let value = |v: &ModelVersion, key: &str| v.metrics.get(key).copied().filter(|x| !x.is_nan());
    let found = tried
        .iter()
        .find_map(|key| Some((key.clone(), value(candidate, key)?, value(current, key)?)));
    let Some((metric, candidate_value, current_value)) = found else {
        return Err(GateRefusal::NoCommonMetric {
            name: candidate.name.clone(),
            alias: alias.to_string(),
            tried,
            candidate: candidate.version,
            candidate_has: quality_metrics(&candidate.metrics),
            current: current.version,
            current_has: quality_metrics(&current.metrics),
        });
    };
    let worse = if lower_is_better(&metric) {
        candidate_value > current_value
    } else {
        candidate_value < current_value
    };
    if worse {
        return Err(GateRefusal::Worse {
            name: candidate.name.clone(),
            alias: alias.to_string(),
            metric,
            candidate: candidate.version,
            candidate_value,
            current: current.version,
            current_value,
        });
    }
    Ok(GatePass {
        metric,
        candidate_value,
        current_value,
    })
}

/// The metrics worth naming when none compares: scores (accuracy, F1, precision, recall) and
/// losses, not timings or counts.
fn quality_metrics(m: &BTreeMap<String, f64>) -> Vec<String> {
    m.keys()
        .filter(|k| {
            let last = k.rsplit('.').next().unwrap_or(k);
            ["accuracy", "f1", "precision", "recall", "loss"]
                .iter()
                .any(|s| last.ends_with(s))
        })
        .cloned()
        .collect()
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "no comparable metric".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(v: u64, metrics: &[(&str, f64)]) -> ModelVersion {
        ModelVersion {
            name: "default".into(),
            version: v,
            run_id: format!("run{v}"),
            run_name: "r".into(),
            model_type: "linear".into(),
            data_path: None,
            data_version: None,
            metrics: metrics.iter().map(|(k, x)| (k.to_string(), *x)).collect(),
            labels: vec!["a".into(), "b".into()],
            input: Default::default(),
            files: vec![],
            code_version: None,
            description: None,
            created_at: chrono::Utc::now(),
            created_by: "t".into(),
        }
    }

    #[test]
    fn the_first_default_metric_both_have_decides() {
        // v2 is better on validation accuracy but only v1 was evaluated on test: the test
        // metric is skipped (not common), validation_macro_f1 is the first common one.
        let cur = version(
            1,
            &[
                ("eval.test.macro_f1", 0.99),
                ("validation_macro_f1", 0.80),
                ("validation_accuracy", 0.70),
            ],
        );
        let new = version(
            2,
            &[("validation_macro_f1", 0.85), ("validation_accuracy", 0.60)],
        );
        let pass = check("production", &new, &cur, None).unwrap();
        assert_eq!(pass.metric, "validation_macro_f1");
        assert_eq!((pass.candidate_value, pass.current_value), (0.85, 0.80));
    }

    #[test]
    fn a_strictly_worse_metric_is_refused_naming_versions_metric_and_values() {
        let cur = version(1, &[("eval.test.accuracy", 0.91)]);
        let new = version(3, &[("eval.test.accuracy", 0.87)]);
        let err = check("production", &new, &cur, None).unwrap_err();
        assert!(matches!(err, GateRefusal::Worse { .. }));
        let msg = err.to_string();
        for part in [
            "v3",
            "v1",
            "eval.test.accuracy",
            "0.8700",
            "0.9100",
            "--force",
        ] {
            assert!(msg.contains(part), "{part} missing from: {msg}");
        }
        // Equal is not worse.
        let same = version(4, &[("eval.test.accuracy", 0.91)]);
        assert!(check("production", &same, &cur, None).is_ok());
    }

    #[test]
    fn a_named_metric_overrides_the_defaults_and_losses_are_lower_is_better() {
        let cur = version(
            1,
            &[("validation_accuracy", 0.9), ("validation_loss", 0.30)],
        );
        let new = version(
            2,
            &[("validation_accuracy", 0.8), ("validation_loss", 0.25)],
        );
        assert!(check("production", &new, &cur, None).is_err());
        let pass = check("production", &new, &cur, Some("validation_loss")).unwrap();
        assert_eq!(pass.metric, "validation_loss");
        let worse = version(3, &[("validation_loss", 0.5)]);
        let err = check("production", &worse, &cur, Some("validation_loss")).unwrap_err();
        assert!(err.to_string().contains("lower is better"), "{err}");
    }

    #[test]
    fn no_common_metric_is_refused_naming_what_each_has() {
        let cur = version(1, &[("eval.test.accuracy", 0.9), ("train_seconds", 3.0)]);
        let new = version(
            2,
            &[("validation_accuracy", 0.95), ("eval.test.ece", f64::NAN)],
        );
        let err = check("production", &new, &cur, None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, GateRefusal::NoCommonMetric { .. }), "{msg}");
        assert!(msg.contains("v2 has validation_accuracy"), "{msg}");
        assert!(msg.contains("v1 has eval.test.accuracy"), "{msg}");
        assert!(!msg.contains("train_seconds"), "{msg}");
        // A NaN value does not compare either.
        let nan = version(3, &[("eval.test.accuracy", f64::NAN)]);
        assert!(check("production", &nan, &cur, Some("eval.test.accuracy")).is_err());
    }
}

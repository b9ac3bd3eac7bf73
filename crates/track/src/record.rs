//! What a run is made of, as the store returns it: status, params, metrics with steps,
//! artifacts, per-stage time and peak memory, data, code and machine versions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The life of a run. `Killed` is never written: it is how a `Running` run whose process died
/// (stale heartbeat, or a dead process on this host) is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Killed => "killed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "finished" => Self::Finished,
            "failed" => Self::Failed,
            "killed" => Self::Killed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code a run was made with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeVersion {
    /// `git rev-parse HEAD` of the checkout the command ran in, when there is one.
    pub git_commit: Option<String>,
    /// Uncommitted changes to tracked files (`git status --porcelain --untracked-files=no`).
    pub git_dirty: Option<bool>,
    /// The taxon binary's version.
    pub taxon_version: String,
}

/// The machine a run ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    pub hostname: String,
    pub cpu_model: String,
    pub cores: usize,
    pub memory_bytes: u64,
    pub os: String,
}

/// One stage of a run (load data, train, validate+save, evaluate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub name: String,
    pub seconds: f64,
    /// Peak resident memory during the stage (VmHWM, reset at the stage's start where the
    /// kernel allows; otherwise the process peak up to the stage's end).
    pub peak_rss_bytes: u64,
}

/// One value of a per-step metric (a step is an epoch for training curves).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub key: String,
    pub step: u64,
    pub value: f64,
    pub timestamp: DateTime<Utc>,
}

/// A file a run produced, with its md5 and size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// Name within the run (`model/model.json`, `eval/test.json`).
    pub name: String,
    /// Where it lies on disk.
    pub path: String,
    pub md5: String,
    pub size: u64,
}

/// The summary of a run (one row of `taxon runs list`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub name: String,
    /// `train` or `eval`.
    pub kind: String,
    pub status: RunStatus,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub heartbeat: DateTime<Utc>,
    pub duration_seconds: Option<f64>,
    pub model_type: Option<String>,
    pub data_path: Option<String>,
    /// The data's version id (md5 from its `.dvc` pointer) when the data is tracked.
    pub data_version: Option<String>,
    /// Final metrics (validation and test scores, timings).
    pub metrics: BTreeMap<String, f64>,
}

/// Everything recorded about a run (`taxon runs show`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub error: Option<String>,
    pub pid: Option<u32>,
    /// The resolved configuration, flattened to dotted keys.
    pub params: BTreeMap<String, String>,
    pub history: Vec<MetricPoint>,
    pub artifacts: Vec<Artifact>,
    pub stages: Vec<StageRecord>,
    pub code: CodeVersion,
    pub machine: MachineInfo,
    /// The run's id on the MLflow server it was mirrored to.
    pub mlflow_run_id: Option<String>,
}

/// Flattens a JSON value to dotted keys with string values (`model_config.dim = "100"`), as
/// runs record their params; `null` values are left out.
pub fn flatten_params(value: &serde_json::Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match v {
            serde_json::Value::Null => {}
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_params_uses_dotted_keys_and_drops_nulls() {
        let v = serde_json::json!({"epochs": 5, "model_config": {"dim": 10, "weighting": "tfidf"},
            "validation": null, "data": "a.jsonl", "lowercase": true});
        let p = flatten_params(&v);
        assert_eq!(p["epochs"], "5");
        assert_eq!(p["model_config.dim"], "10");
        assert_eq!(p["model_config.weighting"], "tfidf");
        assert_eq!(p["data"], "a.jsonl");
        assert_eq!(p["lowercase"], "true");
        assert!(!p.contains_key("validation"));
    }

    #[test]
    fn status_round_trips_through_text() {
        for s in [
            RunStatus::Running,
            RunStatus::Finished,
            RunStatus::Failed,
            RunStatus::Killed,
        ] {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RunStatus::parse("done"), None);
    }
}

//! The records the registry hands out: a model version with its lineage, an alias change from
//! the audit history, and the options of registering and of moving an alias.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use taxon_core::model::{InputLimits, ModelFile};

/// One registered version of a named model, with its lineage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The model's name in the registry (`default` unless named).
    pub name: String,
    /// 1, 2, 3, ... per name.
    pub version: u64,
    /// The training run that made the model.
    pub run_id: String,
    pub run_name: String,
    /// `linear`, `lstm`, ... (from `model.json`).
    pub model_type: String,
    /// The training data's path, as the run recorded it.
    pub data_path: Option<String>,
    /// The training data's version id (md5 of its `.dvc` pointer) when it was tracked.
    pub data_version: Option<String>,
    /// The run's final metrics when it was registered (validation and `eval.*` scores).
    pub metrics: BTreeMap<String, f64>,
    /// The class labels, in output order.
    pub labels: Vec<String>,
    /// What inputs the model accepts.
    pub input: InputLimits,
    /// Every file of the model folder (`model.json` included), with size and md5.
    pub files: Vec<ModelFile>,
    /// The git commit the run was made from (`-dirty` when tracked files had changes).
    pub code_version: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Who registered it.
    pub created_by: String,
}

impl ModelVersion {
    /// The total size of the version's files, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// One change of an alias, as the audit history records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AliasChange {
    pub name: String,
    pub alias: String,
    /// The version the alias pointed at before (`None`: it was not set).
    pub from_version: Option<u64>,
    /// The version it points at after (`None`: it was removed).
    pub to_version: Option<u64>,
    pub actor: String,
    pub at: DateTime<Utc>,
    /// True when `--force` overrode a refusal of the promotion gate.
    pub forced: bool,
    /// What the promotion gate decided (or what `--force` overrode); `None` for ungated aliases.
    pub reason: Option<String>,
}

impl AliasChange {
    /// True for a set that changed nothing (the alias already pointed at the version): such a
    /// change is not recorded in the history.
    pub fn is_noop(&self) -> bool {
        self.from_version == self.to_version
    }
}

/// How to register a run's model.
#[derive(Clone, Debug, Default)]
pub struct RegisterOptions {
    /// The model name (`default` in the CLI).
    pub name: String,
    pub description: Option<String>,
    /// Who registers it.
    pub actor: String,
    /// Register a run that already has a version under this name again.
    pub allow_duplicate: bool,
}

/// How to move an alias.
#[derive(Clone, Debug, Default)]
pub struct AliasOptions {
    /// Override a refusal of the promotion gate (recorded in the history).
    pub force: bool,
    /// Who moves it.
    pub actor: String,
    /// The metric the promotion gate compares (default: see [`crate::gate::DEFAULT_GATE_METRICS`]).
    pub metric: Option<String>,
}

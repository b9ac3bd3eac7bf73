//! Run tracking: every training and evaluation run records params (the resolved config),
//! per-epoch metrics, final metrics, artifacts (md5 of each model file, eval reports), the data
//! version (from its `.dvc` pointer), the code version (git), machine info and per-stage time
//! and peak memory in an embedded SQLite store (`.taxon/runs.db`); runs can be listed, shown
//! and compared, mirrored to an MLflow tracking server over its REST API, and their stage
//! timings pushed to a Prometheus Pushgateway.

pub mod artifacts;
pub mod compare;
pub mod env;
pub mod error;
pub mod mlflow;
pub mod pushgateway;
pub mod record;
pub mod stage;
pub mod store;
pub mod tracker;

pub use compare::{Comparison, compare};
pub use error::TrackError;
pub use record::{
    Artifact, CodeVersion, MachineInfo, MetricPoint, RunRecord, RunStatus, RunSummary, StageRecord,
    flatten_params,
};
pub use stage::StageClock;
pub use store::{NewRun, RUNS_DB, RunEnd, RunStore};
pub use tracker::{Finished, Mirrors, Tracker};
